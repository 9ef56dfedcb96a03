"""`reelvec deploy`: render the Kubernetes overlays with chosen images, apply them with server-side
apply and wait for the rollouts, report status, scale (docs/deploy.md)."""
