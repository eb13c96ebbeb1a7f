"""The life of an incident, computed: onset, cause, recovery per group, bookings lost, detection, claims.

One public entry point, :func:`rca_toolkit.analyses.incident.build.incident`, shared by ``rca incident``
and ``notebooks/incident_report.ipynb``; the modules beside it each answer one part (``signature``
which rows carry the incident, ``groups`` the impact per group, ``causes`` which change explains the
onset and each recovery, ``detection`` when the daily health report would have said ACT, ``claims``
which claims hold, ``timeline`` the ordered events, ``report`` the result object).
"""
