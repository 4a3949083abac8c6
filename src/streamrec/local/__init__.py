"""The embedded local stack behind ``streamrec run`` and the integration tests.

It reads ``template.yaml`` (:mod:`.template`), serves the AWS APIs with moto in-process,
polls the Kinesis streams the way Lambda's event source mappings do (:mod:`.pollers`),
imports every function's handler in-process (:mod:`.stack`) and answers the HTTP API with
API Gateway payload format 2.0 events (:mod:`.http_api`).
"""
