"""`make bench`: the inventory sync at organisation scale, measured.

The harness (`python -m scripts.bench.run --fleet small|org`) starts moto and the DRS
simulator as separate server processes on loopback, seeds a generated fleet, runs the real
`sync_source_server_inventory` in a child process (`--runs`, default 3: a cold run on an
empty inventory, then steady runs, the fleet churned by one schedule interval before each),
and prints per run: wall and CPU seconds, peak RSS, API and DynamoDB call counts, DynamoDB
capacity units per table and index, items written, the fakes' CPU seconds, moto's queue,
the machine's load and the latency floor, each target with PASS/MISS; then the steady runs'
spread, the monthly cost per 1,000 servers and the largest fleet one invocation fits.

Modules:
  fleets      the generated fleets as data, and the minimum calls each one needs
  processes   starting/stopping the server and child processes; CPU seconds from /proc
  seed        tables, target accounts, EC2 instances, DRS servers and faults
  sync_child  the child process that runs the sync and measures itself
  load        the machine's load during a run, and whether others contended with it
  cost        prices, monthly cost per 1,000 servers, the largest fleet that fits
  report      targets (PASS/MISS) and the printed table
  run         the command line
"""
