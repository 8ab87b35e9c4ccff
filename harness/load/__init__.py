"""Load generation: Locust in a subprocess (see worker.py) driven by generator.py."""
