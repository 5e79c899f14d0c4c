# The smallest deployment: the pipeline with its defaults, called as a module.
#
#   terraform init
#   terraform apply -target='module.ga4_stitch.google_secret_manager_secret.this'
#   (add the secrets' versions: ../../README.md, "Secrets")
#   terraform apply

terraform {
  required_version = ">= 1.5"

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = "~> 7.6"
    }
    archive = {
      source  = "hashicorp/archive"
      version = "~> 2.7"
    }
  }
}

provider "google" {
  project = var.project_id
  region  = var.region
}

variable "project_id" {
  description = "Google Cloud project to deploy into."
  type        = string
}

variable "region" {
  description = "Region for the functions."
  type        = string
  default     = "europe-west1"
}

variable "gtm_server_service_account_email" {
  description = "Service account the server-side GTM container runs as."
  type        = string
}

variable "ga4_measurement_id" {
  description = "Measurement id of the GA4 web stream (G-...)."
  type        = string
}

module "ga4_stitch" {
  source = "../.."

  project_id                       = var.project_id
  region                           = var.region
  gtm_server_service_account_email = var.gtm_server_service_account_email
  ga4_measurement_id               = var.ga4_measurement_id
}

output "raw_events_topic" {
  description = "Topic the GTM SC tag publishes to."
  value       = module.ga4_stitch.raw_events_topic
}

output "secret_version_commands" {
  description = "Commands that add each secret's first version."
  value       = module.ga4_stitch.secret_version_commands
}
