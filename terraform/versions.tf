terraform {
  # Optional object attributes, check blocks and strcontains() need 1.5.
  required_version = ">= 1.5"

  required_providers {
    google = {
      source = "hashicorp/google"
      # 7.x: google_project_service no longer disables services on destroy by default,
      # and google_cloudfunctions2_function reports service_config.service as output.
      version = "~> 7.6"
    }
    archive = {
      source  = "hashicorp/archive"
      version = "~> 2.7"
    }
  }
}
