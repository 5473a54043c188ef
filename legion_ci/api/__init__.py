"""The management REST API: inspect models, versions and runs; route traffic, move aliases, deploy and roll
back; every request carries a JWT whose `role` (and optional `models`) says what it may do."""
