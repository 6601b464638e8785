// libFuzzer target over the Svix header parser and verifier, and base64.
// Besides "no crash, no UB, no leak", it checks properties that must hold for
// every input: canonical base64 round-trips, and whatever we sign verifies.
#include <fuzzer/FuzzedDataProvider.h>

#include <cstdint>
#include <cstdlib>
#include <string>

#include "core/base64.h"
#include "core/webhook.h"

using namespace jnx::core;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  FuzzedDataProvider in(data, size);
  const std::string secret = in.ConsumeRandomLengthString(96);
  const std::string msg_id = in.ConsumeRandomLengthString(64);
  const std::string timestamp = in.ConsumeRandomLengthString(24);
  const std::string header = in.ConsumeRandomLengthString(512);
  const int64_t now = in.ConsumeIntegral<int64_t>() % 10000000000LL;
  const std::string body = in.ConsumeRemainingBytesAsString();

  std::string decoded;
  if (Base64Decode(secret, &decoded) && Base64Encode(decoded) != secret) std::abort();

  std::string key;
  if (DecodeWebhookSecret(secret, &key) != WebhookError::kOk) key = "fallback fuzzing key";
  const std::string_view keys[] = {key};
  (void)VerifyWebhook(msg_id, timestamp, header, body, keys, 1, now);
  (void)VerifyWebhook(msg_id, timestamp, header, body, nullptr, 0, now);

  int64_t ts = 0;
  std::string signature;
  if (ParseWebhookTimestamp(timestamp, &ts) == WebhookError::kOk &&
      SignWebhook(key, msg_id, ts, body, &signature) == WebhookError::kOk) {
    // Our own signature, alone or among other entries, must verify at ts.
    if (VerifyWebhook(msg_id, timestamp, signature, body, keys, 1, ts) != WebhookError::kOk) {
      std::abort();
    }
    const std::string mixed = header.substr(0, 40) + " " + signature;
    const WebhookError e = VerifyWebhook(msg_id, timestamp, mixed, body, keys, 1, ts);
    if (mixed.size() <= kMaxSignatureHeaderBytes && e != WebhookError::kOk) std::abort();
  }
  return 0;
}
