// The error and expected<T> types that every layer of cafes returns: the core of its API,
// with no dependency beyond the standard library.
#pragma once

#include <stdexcept>
#include <string>
#include <system_error>
#include <type_traits>
#include <utility>
#include <variant>

namespace cafes {

/// An error: a code from one of the layers' categories and a message with the context.
struct error {
  std::error_code code;
  std::string message;

  error() = default;
  error(std::error_code c, std::string msg = {}) : code(c), message(std::move(msg)) {}
  template <class E, class = std::enable_if_t<std::is_error_code_enum_v<E>>>
  error(E e, std::string msg = {}) : code(make_error_code(e)), message(std::move(msg)) {}

  /// Returns "category:code-name: message".
  std::string to_string() const;
  friend bool operator==(const error& x, std::error_code c) { return x.code == c; }
  template <class E, class = std::enable_if_t<std::is_error_code_enum_v<E>>>
  friend bool operator==(const error& x, E e) { return x.code == make_error_code(e); }
  /// Compares with an error condition (cafes::condition, std::errc).
  template <class E, std::enable_if_t<std::is_error_condition_enum_v<E>, int> = 0>
  friend bool operator==(const error& x, E e) { return x.code == make_error_condition(e); }
};

/// Either a value or an error (C++20 has no std::expected).
template <class T>
class [[nodiscard]] expected {
 public:
  using value_type = T;
  template <class U = T, class = std::enable_if_t<std::is_constructible_v<T, U&&> &&
                                                  !std::is_same_v<std::decay_t<U>, error>>>
  expected(U&& v) : v_(std::in_place_index<0>, std::forward<U>(v)) {}
  expected(cafes::error e) : v_(std::in_place_index<1>, std::move(e)) {}
  template <class E, class = std::enable_if_t<std::is_error_code_enum_v<E>>>
  expected(E e) : v_(std::in_place_index<1>, cafes::error{e}) {}

  explicit operator bool() const noexcept { return v_.index() == 0; }
  bool has_value() const noexcept { return v_.index() == 0; }
  T& value() & { check(); return std::get<0>(v_); }
  const T& value() const& { check(); return std::get<0>(v_); }
  T&& value() && { check(); return std::get<0>(std::move(v_)); }
  /// The value, or `fallback` on an error.
  template <class U>
  T value_or(U&& fallback) const& { return has_value() ? std::get<0>(v_) : static_cast<T>(std::forward<U>(fallback)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::move(*this).value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  const cafes::error& error() const& { return std::get<1>(v_); }
  cafes::error&& error() && { return std::get<1>(std::move(v_)); }

 private:
  void check() const;
  std::variant<T, cafes::error> v_;
};

/// expected<void>: success or an error.
template <>
class [[nodiscard]] expected<void> {
 public:
  expected() = default;
  expected(cafes::error e) : err_(std::move(e)), ok_(false) {}
  template <class E, class = std::enable_if_t<std::is_error_code_enum_v<E>>>
  expected(E e) : err_(cafes::error{e}), ok_(false) {}
  explicit operator bool() const noexcept { return ok_; }
  bool has_value() const noexcept { return ok_; }
  void value() const;
  const cafes::error& error() const& { return err_; }
  cafes::error&& error() && { return std::move(err_); }

 private:
  cafes::error err_;
  bool ok_ = true;
};

/// Thrown only by expected<T>::value() on an error: a programming error at the call site.
class bad_expected_access : public std::runtime_error {
 public:
  explicit bad_expected_access(const cafes::error& e) : std::runtime_error(e.to_string()), err_(e) {}
  const cafes::error& error() const noexcept { return err_; }

 private:
  cafes::error err_;
};

template <class T>
void expected<T>::check() const {
  if (v_.index() != 0)
    throw bad_expected_access(std::get<1>(v_));
}

inline void expected<void>::value() const {
  if (!ok_)
    throw bad_expected_access(err_);
}

} // namespace cafes
