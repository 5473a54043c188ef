"""Docker images of artifacts: render the Dockerfile, assemble the build context from an allowlist,
build with the Docker engine, push to an image registry and record the digest."""
