"""Shared backends for :class:`wsgisse.Channel`: where events go so that every process sees them.

``wsgisse.backends.redis`` keeps each channel's log in a Redis stream, so that a publish
in any process (a web worker, a script, a task queue worker) reaches the subscribers of
every worker on every host, and a ``Last-Event-ID`` resumes anywhere. Import it on its
own: neither ``import wsgisse`` nor this package imports ``redis``.
"""
