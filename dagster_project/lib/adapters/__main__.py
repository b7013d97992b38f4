from dagster_project.lib.adapters import print_fingerprints

print_fingerprints()
