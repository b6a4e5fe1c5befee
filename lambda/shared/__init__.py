"""Code shared by every Lambda function of aws-drs-orchestration (bundled into each package)."""
