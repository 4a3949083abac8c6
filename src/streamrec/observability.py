"""The one place that creates the Powertools logger (configured by POWERTOOLS_* variables)."""

from aws_lambda_powertools import Logger

logger = Logger()
