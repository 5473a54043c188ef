"""One module per schema revision; Alembic finds them by their `revision` and `down_revision`."""
