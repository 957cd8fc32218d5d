"""tus uploads on S3: part numbers reserved in the upload's row, never used twice

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03 09:30:00.000000
"""
from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('tus_uploads', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('next_part', sa.Integer(), server_default='0', nullable=False)
        )
    # An upload in progress goes on after its highest recorded part.
    op.execute(
        'UPDATE tus_uploads SET next_part = COALESCE((SELECT MAX(number) FROM tus_upload_parts'
        ' WHERE tus_upload_parts.upload_id = tus_uploads.id), 0)'
    )


def downgrade() -> None:
    with op.batch_alter_table('tus_uploads', schema=None) as batch_op:
        batch_op.drop_column('next_part')
