// jnx-mint: test-only key and token tool (keys are generated at test time).
//
//   jnx-mint keygen DIR KID [BITS]        an RSA key (BITS, default 2048): DIR/KID.pem
//                                          (private) and prints the public JWK
//   jnx-mint keygen DIR KID P-256         the same for an EC P-256 key (ES256)
//   jnx-mint token DIR KID HEADER PAYLOAD [ALG]
//                                          a JWS signed with DIR/KID.pem; HEADER and
//                                          PAYLOAD are JSON texts, signed as given;
//                                          ALG (the digest) defaults to RS256 for an
//                                          RSA key and ES256 for an EC key, whose
//                                          signature is r || s (RFC 7518)
// The printed JWK names no alg. Exit status 2 on a usage error, 1 on failure.
#include <openssl/pem.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "token_util.h"

namespace t = jnx::testing;

namespace {

int Usage() {
  std::fprintf(
      stderr, "usage: jnx-mint keygen DIR KID [BITS|P-256] | token DIR KID HEADER PAYLOAD [ALG]\n");
  return 2;
}

}  // namespace

int main(int argc, char **argv) {
  const std::string cmd = argc > 1 ? argv[1] : "";
  if (cmd == "keygen" && (argc == 4 || argc == 5)) {
    const std::string kind = argc == 5 ? argv[4] : "2048";
    t::Key key;
    if (kind == "P-256") {
      key = t::GenerateEc(argv[3]);
    } else {
      char *end = nullptr;
      const unsigned long bits = std::strtoul(kind.c_str(), &end, 10);
      if (kind.empty() || *end != '\0' || bits < 512 || bits > 16384) return Usage();
      key = t::GenerateRsa(argv[3], static_cast<unsigned>(bits));
    }
    const std::string path = std::string(argv[2]) + "/" + argv[3] + ".pem";
    FILE *f = std::fopen(path.c_str(), "w");
    if (f == nullptr || key.pkey == nullptr ||
        PEM_write_PrivateKey(f, key.pkey.get(), nullptr, nullptr, 0, nullptr, nullptr) != 1) {
      if (f != nullptr) std::fclose(f);
      std::fprintf(stderr, "cannot write %s\n", path.c_str());
      return 1;
    }
    std::fclose(f);
    std::printf("%s\n", t::Jwk(key, "").c_str());
    return 0;
  }
  if (cmd == "token" && (argc == 6 || argc == 7)) {
    const std::string path = std::string(argv[2]) + "/" + argv[3] + ".pem";
    FILE *f = std::fopen(path.c_str(), "r");
    t::Key key;
    key.kid = argv[3];
    if (f != nullptr) key.pkey.reset(PEM_read_PrivateKey(f, nullptr, nullptr, nullptr));
    if (f != nullptr) std::fclose(f);
    if (key.pkey == nullptr) {
      std::fprintf(stderr, "cannot read %s\n", path.c_str());
      return 1;
    }
    std::printf("%s\n", t::Token(key, argv[4], argv[5], argc == 7 ? argv[6] : "").c_str());
    return 0;
  }
  return Usage();
}
