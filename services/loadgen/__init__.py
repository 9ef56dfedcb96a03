"""The load generator beside the services (Locust with a gRPC user): `make loadtest`."""
