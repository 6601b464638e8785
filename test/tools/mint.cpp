// jnx-mint: test-only key and token tool (keys are generated at test time).
//
//   jnx-mint keygen DIR KID [BITS]       DIR/KID.pem (private) and prints the JWK
//   jnx-mint token DIR KID HEADER PAYLOAD [ALG]
//                                         a JWS signed with DIR/KID.pem; HEADER and
//                                         PAYLOAD are JSON texts, signed as given
#include <openssl/pem.h>

#include <cstdio>
#include <string>

#include "token_util.h"

namespace t = jnx::testing;

int main(int argc, char **argv) {
  const std::string cmd = argc > 1 ? argv[1] : "";
  if (cmd == "keygen" && (argc == 4 || argc == 5)) {
    t::RsaKey key = t::GenerateRsa(argv[3], argc == 5 ? std::stoul(argv[4]) : 2048);
    const std::string path = std::string(argv[2]) + "/" + argv[3] + ".pem";
    FILE *f = std::fopen(path.c_str(), "w");
    if (f == nullptr || key.pkey == nullptr ||
        PEM_write_PrivateKey(f, key.pkey.get(), nullptr, nullptr, 0, nullptr, nullptr) != 1) {
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
    t::RsaKey key;
    key.kid = argv[3];
    if (f != nullptr) key.pkey.reset(PEM_read_PrivateKey(f, nullptr, nullptr, nullptr));
    if (f != nullptr) std::fclose(f);
    if (key.pkey == nullptr) {
      std::fprintf(stderr, "cannot read %s\n", path.c_str());
      return 1;
    }
    std::printf("%s\n", t::Token(key, argv[4], argv[5], argc == 7 ? argv[6] : "RS256").c_str());
    return 0;
  }
  std::fprintf(stderr,
               "usage: jnx-mint keygen DIR KID [BITS] | token DIR KID HEADER PAYLOAD [ALG]\n");
  return 2;
}
