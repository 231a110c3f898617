import numpy as np
import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "odeprune", derandomize=True, deadline=None, max_examples=40,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile("odeprune")


def random_cov(rng: np.random.Generator, L: int, scale: float = 1.0) -> np.ndarray:
    """A random valid (positive definite) covariance with entries of order ``scale``."""
    A = rng.normal(size=(L, L + 2)) * np.sqrt(scale / (L + 2))
    return A @ A.T


@pytest.fixture
def rng():
    return np.random.default_rng(12345)
