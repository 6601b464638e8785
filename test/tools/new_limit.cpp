// A fault injector for the shim's tests, loaded with LD_PRELOAD: C++
// allocations larger than JNX_TEST_NEW_LIMIT bytes throw std::bad_alloc, as
// they would when memory runs out. C allocations (libpq's, PostgreSQL's
// results) are untouched, so the failure lands in the shim's own code.
#include <cstdlib>
#include <new>

namespace {

size_t Limit() {
  static const size_t limit = [] {
    const char *text = std::getenv("JNX_TEST_NEW_LIMIT");
    return text != nullptr ? static_cast<size_t>(std::strtoull(text, nullptr, 10)) : 0;
  }();
  return limit;
}

void *Allocate(size_t size) {
  if (Limit() != 0 && size > Limit()) throw std::bad_alloc();
  void *p = std::malloc(size != 0 ? size : 1);
  if (p == nullptr) throw std::bad_alloc();
  return p;
}

}  // namespace

void *operator new(size_t size) {
  return Allocate(size);
}
void *operator new[](size_t size) {
  return Allocate(size);
}
void operator delete(void *p) noexcept {
  std::free(p);
}
void operator delete[](void *p) noexcept {
  std::free(p);
}
void operator delete(void *p, size_t) noexcept {
  std::free(p);
}
void operator delete[](void *p, size_t) noexcept {
  std::free(p);
}
