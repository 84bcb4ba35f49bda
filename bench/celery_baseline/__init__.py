"""The baseline: the same invitation job written as a Celery 5 app, a task per recipient."""
