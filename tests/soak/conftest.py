"""The soak reuses the pipeline's real-process fixture."""

from tests.pipeline.conftest import processes  # noqa: F401 - the fixture, reused
