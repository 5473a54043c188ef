"""Deploy targets: `local` (model-server processes on this machine) and `kubernetes` (Helm through Ansible)."""
