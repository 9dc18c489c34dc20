//! What a team deploys, checked before it reaches their cluster: the container image's
//! Dockerfile, the Kubernetes manifests, and the Prometheus rules and Grafana dashboard.

mod image;
mod k8s;
mod rules;
