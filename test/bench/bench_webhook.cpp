// Svix verification in the core vs OpenSSL's own HMAC-SHA256 on the same bytes.
//
// Reference: EVP_MAC HMAC-SHA256 with the key already set and the context
// reused, over the exact signed content (id.timestamp.body) in one buffer:
// the fastest OpenSSL computes this MAC. Ours: the full VerifyWebhook (header
// parsing, timestamp window, key setup, HMAC, base64, constant-time compare).
// Rounds alternate between the two so that drift on a shared machine hits
// both alike; the ratio is the median of per-round ratios.
#include <openssl/core_names.h>
#include <openssl/evp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

#include "bench_util.h"
#include "core/webhook.h"

namespace {

// A Clerk user.updated envelope padded to `size` bytes with realistic fields.
std::string ClerkBody(size_t size) {
  std::string body =
      R"({"data":{"backup_code_enabled":false,"banned":false,"create_organization_enabled":true,)"
      R"("created_at":1654012591514,"delete_self_enabled":true,"email_addresses":[{"email_address":)"
      R"("example@example.org","id":"idn_29w83yL7CwVlJXylYLxcslromF1","linked_to":[],"object":)"
      R"("email_address","reserved":true,"verification":{"attempts":null,"expire_at":null,"status":)"
      R"("verified","strategy":"admin"}}],"external_accounts":[],"external_id":null,"first_name":)"
      R"("Example","has_image":true,"id":"user_29w83sxmDNGwOuEthce5gg56FcC","image_url":)"
      R"("https://img.clerk.com/xxxxxx","last_name":null,"last_sign_in_at":null,"locked":false,)"
      R"("object":"user","password_enabled":true,"phone_numbers":[],"primary_email_address_id":)"
      R"("idn_29w83yL7CwVlJXylYLxcslromF1","primary_phone_number_id":null,"primary_web3_wallet_id":)"
      R"(null,"private_metadata":{},"profile_image_url":"https://www.gravatar.com/avatar?d=mp",)"
      R"("public_metadata":{},"two_factor_enabled":false,"unsafe_metadata":{},"updated_at":)"
      R"(1654012824306,"username":null,"web3_wallets":[],"notes":")";
  const std::string tail =
      R"("},"event_attributes":{"http_request":{"client_ip":"","user_agent":""}},"instance_id":)"
      R"("ins_123","object":"event","timestamp":1654012824306,"type":"user.updated"})";
  while (body.size() + tail.size() < size) body.push_back('x');
  return body + tail;
}

struct Setup {
  std::string key, msg_id = "msg_2KWPBgLlAfxdpx2AI4pb7ZIy8rk", ts = "1654012824", body, header;
  std::string signed_content;
};

}  // namespace

int main(int argc, char **argv) {
  const size_t body_bytes = argc > 1 ? std::strtoul(argv[1], nullptr, 10) : 2600;
  const int rounds = argc > 2 ? std::atoi(argv[2]) : 7;
  const double seconds = argc > 3 ? std::atof(argv[3]) : 0.5;

  Setup s;
  if (jnx::core::DecodeWebhookSecret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", &s.key) !=
      jnx::core::WebhookError::kOk) {
    return 1;
  }
  s.body = ClerkBody(body_bytes);
  if (jnx::core::SignWebhook(s.key, s.msg_id, std::stoll(s.ts), s.body, &s.header) !=
      jnx::core::WebhookError::kOk) {
    return 1;
  }
  s.signed_content = s.msg_id + "." + s.ts + "." + s.body;
  const int64_t now = std::stoll(s.ts);
  const std::string_view keys[] = {s.key};

  EVP_MAC *mac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
  EVP_MAC_CTX *ctx = EVP_MAC_CTX_new(mac);
  char digest_name[] = "SHA256";
  OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest_name, 0),
                         OSSL_PARAM_construct_end()};
  if (EVP_MAC_init(ctx, reinterpret_cast<const unsigned char *>(s.key.data()), s.key.size(),
                   params) != 1) {
    return 1;
  }
  auto openssl_hmac = [&] {
    unsigned char out[32];
    size_t len = 0;
    return EVP_MAC_init(ctx, nullptr, 0, nullptr) == 1 &&
           EVP_MAC_update(ctx, reinterpret_cast<const unsigned char *>(s.signed_content.data()),
                          s.signed_content.size()) == 1 &&
           EVP_MAC_final(ctx, out, &len, sizeof out) == 1;
  };
  auto ours = [&] {
    return jnx::core::VerifyWebhook(s.msg_id, s.ts, s.header, s.body, keys, 1, now) ==
           jnx::core::WebhookError::kOk;
  };

  const jnx::bench::Comparison c = jnx::bench::Alternate(openssl_hmac, ours, rounds, seconds);
  std::printf("core svix verify, %zu-byte Clerk body, %d alternating rounds of %.1fs\n",
              s.body.size(), rounds, seconds);
  std::printf("  openssl HMAC-SHA256 (EVP_MAC, key preset): %10.0f ops/s (median)\n", c.reference);
  std::printf("  jnx VerifyWebhook (full verification):     %10.0f ops/s (median)\n", c.ours);
  std::printf("  ratio verify/openssl: %.3f (median of per-round ratios; target >= 0.80)\n",
              c.ratio);
  EVP_MAC_CTX_free(ctx);
  EVP_MAC_free(mac);
  return 0;
}
