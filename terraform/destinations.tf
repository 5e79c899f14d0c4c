# How the forward function reaches GA4: the Measurement Protocol (an API secret per
# stream) or the Data Manager API (the function's own service account, OAuth scope
# https://www.googleapis.com/auth/datamanager). docs/forwarding.md compares the two.
#
# Access the Data Manager API needs, granted outside Terraform (neither GA4 nor Google
# Ads access is a Google Cloud IAM binding; the email is output service_accounts.forward):
#
# - GA4: in Google Analytics, Admin > Property access management, add the forward
#   function's service account email (google_service_account.forward) as a user with the
#   Editor (or Administrator) role on each property in ga4_property_id /
#   ga4_stream_properties. Google's "Send events" guide for GA4: the request's
#   credentials must be a Google Account with the Editor or Administrator role on the
#   property; the login account is the property itself.
# - Google Ads (data_manager_ads_conversions): add the same email as a user with
#   Standard (or Admin) access to each customer account receiving conversions, or to the
#   manager account named as login_customer_id, which must manage it. The Ads account must
#   also have accepted the customer data terms for enhanced conversions.
# - Google Cloud: datamanager.googleapis.com enabled in this project (apis.tf); no IAM
#   role is involved.

locals {
  # Measurement id -> the destination it is forwarded through.
  stream_destination_values = values(var.ga4_stream_destinations)
  uses_data_manager = (
    var.ga4_destination == "data_manager" || contains(local.stream_destination_values, "data_manager")
  )
  uses_measurement_protocol = (
    var.ga4_destination == "measurement_protocol" || contains(local.stream_destination_values, "measurement_protocol")
  )
}
