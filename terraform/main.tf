# ga4-stitch on Google Cloud: the whole pipeline in one configuration.
#
#   GTM SC --publish--> raw-events --push--> resolve --> enriched-events --push--> forward --> GA4
#                                              |--> identity-links
#   bad input or delivery attempts exhausted --> the source's dead-letter topic
#
# Names that the code also uses (topics, entry points, environment variables, Firestore
# collections) are written once here and checked against the code by
# tests/terraform/test_structure.py; docs/contracts.md is the reference for them.
#
# No provider block: every resource names its project and location, so the configuration
# runs as a root module (`terraform apply` here) or as a child module (examples/minimal).

data "google_project" "this" {
  project_id = var.project_id
}

locals {
  labels = merge(var.labels, { app = "ga4-stitch" })

  # Pub/Sub writes dead letters and mints push OIDC tokens as this Google-managed agent.
  pubsub_service_agent = "service-${data.google_project.this.number}@gcp-sa-pubsub.iam.gserviceaccount.com"
}
