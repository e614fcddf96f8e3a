"""The gateway's HTTP routes, one module per resource: jobs (``/v1/jobs``), video (``/api/video/*``), assets (``/v1/assets``),
timeline (``/v1/jobs/{id}/timeline``, ``/v1/jobs/{id}/bundle``)."""
