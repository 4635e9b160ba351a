"""The team setup's local stand-ins: throwaway PostgreSQL and `mlflow server` processes on
loopback, for the demo, the benchmark and the tests."""
