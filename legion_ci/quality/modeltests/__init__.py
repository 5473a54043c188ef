"""Running a model repository's own pytest tests against a candidate, with fixtures legion-ci provides."""
