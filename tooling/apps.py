from django.apps import AppConfig


class ToolingConfig(AppConfig):
    """Benchmarks, the chaos soak and the fault suite's supervisor and TCP proxy: tools for
    measuring and breaking the service, never imported by the product apps."""

    name = "tooling"
    verbose_name = "Benchmarks and fault tooling"
