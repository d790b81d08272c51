"""ketaclinic — software for ketamine and esketamine depression clinics.

Decision support for clinicians; not medical advice.
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
