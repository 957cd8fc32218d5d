"""tuscam-upload: the bulk-upload command of tuscam.

A tus client (tuspy) that uploads a folder of images into a capture session, several at once,
and resumes after being killed. It imports nothing from app/ or services/.
"""
