"""Reports of a gate or perf run, in the run's folder: HTML with inline SVG plots, JUnit XML, a JSON summary."""
