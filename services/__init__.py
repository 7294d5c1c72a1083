"""The four Xinyong services; each has the same inner layout:

- contracts.py: the topics it consumes and produces, and its HTTP request/response models;
- domain.py: its rules, as pure functions;
- store.py: its own PostgreSQL database (asyncpg), with migrations/;
- handlers.py: its stream handlers (one transaction per batch);
- api.py: its HTTP API (FastAPI);
- main.py: its entry point (`python -m services.<name>`), thin.
"""
