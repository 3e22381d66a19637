"""The Celery edge: app factory, thin review tasks and the Redis result store; filled in by the workers work."""
