"""streamrec: serverless, real-time recommendations for e-commerce."""

__version__ = "0.1.0"
