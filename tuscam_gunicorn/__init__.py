"""gunicorn plugins for tuscam (the access logger, JSON logs, Prometheus multiprocess set-up).

gunicorn.conf.py names them; they import only the standard library and gunicorn at load time."""
