"""`make bench`: the inventory sync at organisation scale, measured.

The harness (`python -m scripts.bench.run --fleet small|org`) starts moto and the DRS
simulator as separate server processes on loopback, seeds a generated fleet, runs the real
`sync_source_server_inventory` in a child process (twice: the second run with nothing
changed), and prints per run: wall and CPU seconds, peak RSS, API and DynamoDB call counts,
items written, the fakes' CPU seconds and the latency floor, each target with PASS/MISS.

Modules:
  fleets      the generated fleets as data, and the minimum calls each one needs
  processes   starting/stopping the server and child processes; CPU seconds from /proc
  seed        tables, target accounts, EC2 instances, DRS servers and faults
  sync_child  the child process that runs the sync and measures itself
  report      targets (PASS/MISS) and the printed table
  run         the command line
"""
