"""Jenkins: render Jenkinsfiles and job config.xml from the stage graph (Jinja), push them with python-jenkins."""
