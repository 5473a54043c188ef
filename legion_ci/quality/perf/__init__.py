"""The performance test: a locustfile, a headless Locust run against the candidate's server, the SLA verdict."""
