"""Alerts: the cron system's rules over the read models (docs/alerts.md).

``rules.py`` turns read-model readings into conditions and ``incidents.py`` decides which
incidents fire and resolve (both pure); ``store.py`` keeps incidents and deliveries in Postgres,
``channels.py`` sends (webhook, email) and ``service.py`` is `leadflow run alerts`.
``prometheus-rules.yml`` is the same rules for users with Prometheus.
"""
