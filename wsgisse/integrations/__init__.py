"""Framework integrations: ``wsgisse.integrations.flask`` and ``wsgisse.integrations.bottle``.

Each is imported on its own; ``import wsgisse`` imports neither, nor their framework.
"""
