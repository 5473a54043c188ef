"""legion-ci: a Jenkins-driven CI/CD suite for machine-learning models."""

__version__ = "0.1.0"
