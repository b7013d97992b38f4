"""Customer identity: normalising e-mail addresses and phone numbers and resolving them to one customer.

`resolution` normalises contact identifiers and builds the identity graph the dbt models read;
`blocklist` (with the shipped `blocklist.yml`) names the placeholder identifiers (shared shop
e-mails, dummy phone numbers) that must never join two customers together.
"""
