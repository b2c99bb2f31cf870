"""The kopf operator that reconciles ModelDeployment resources."""
