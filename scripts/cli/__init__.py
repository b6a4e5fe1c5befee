"""`drs-inventory`: the operator's console for the DRS inventory (see README, "Daily operations").

One module per command group (`sync_commands`, `status_commands`, `server_commands`,
`account_commands`, `report_commands`, `local_commands`), a small client layer that invokes
the deployed functions (`client`), and pure rendering (`render`, `html_report`) that the unit
tests exercise without AWS. Nothing in `lambda/` imports this package.
"""
