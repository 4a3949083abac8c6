"""Reliability tooling: fault injection, poison-record replays and dead-letter handling.

* :mod:`~streamrec.reliability.sandbox`: an in-process AWS account (moto) holding the
  template's tables, streams and queue, with the real handlers imported from it;
* :mod:`~streamrec.reliability.esm`: a deterministic stand-in for Lambda's Kinesis event
  source mapping (batches, partial responses, retries, bisection, OnFailure, re-deliveries);
* :mod:`~streamrec.reliability.faults`: crashes injected before or after write calls, and
  the harness that compares a faulty replay with a clean one (``streamrec faults``);
* :mod:`~streamrec.reliability.poison`: bad records of every kind and the poison replay;
* :mod:`~streamrec.reliability.dlq`: listing and re-driving dead letters (``streamrec dlq``).
"""
