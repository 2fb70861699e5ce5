"""``make demo``: the seed walkthrough in a two-host lab (``python -m tether.demo``).

Layout (one job per module):

- ``model``    plain records: a command to run, its output, a step's result.
- ``expect``   what a step expects (exit status, substrings, regexes) and the check itself.
- ``runner``   runs steps (printing ``+ [host] docker ...`` and the output), records pass/fail,
               groups them in sections; the only place that decides pass/fail.
- ``summary``  the end-of-run table and the exit status.
- ``targets``  how a step becomes a process: the docker CLI pointed at a lab host's socket,
               or a host-side command inside the host's network namespace.
- ``labsetup`` the lab (docker201, docker202, etcd) and the busybox ``alpine`` image.
- ``sections`` the seed's sections 1-7, each a function of a :class:`~.sections.base.Ctx`.

The runner knows nothing about labs or subprocesses (it takes an executor), so its logic is
unit-tested without root (tests/unit/test_demo_runner.py).
"""
