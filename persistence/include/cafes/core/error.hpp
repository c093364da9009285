/// \file
/// The error and expected<T> types that every layer of cafes returns: the core of its API,
/// with no dependency beyond the standard library.
#pragma once

#include <stdexcept>
#include <string>
#include <system_error>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

namespace cafes {

/// An error-code enum: a std::is_error_code_enum, or an enum with a make_error_code found by
/// argument-dependent lookup (as CAFES_ERROR_ENUM declares).
template <class E>
concept error_enum = std::is_enum_v<E> && !std::is_error_condition_enum_v<E> &&
                     (std::is_error_code_enum_v<E> || requires(E e) {
                       { make_error_code(e) } -> std::same_as<std::error_code>;
                     });

/// An error: a code from one of the layers' categories and a message with the context.
struct error {
  /// The code: of a cafes layer's category, or of an application's error enum.
  std::error_code code;
  /// The context: what failed, and on which id, topic or partition; may be empty.
  std::string message;

  error() = default;
  /// An error of code `c` with message `msg`.
  error(std::error_code c, std::string msg = {}) : code(c), message(std::move(msg)) {}
  /// An error of code `e` of an error enum, with message `msg`.
  template <error_enum E>
  error(E e, std::string msg = {}) : code(make_error_code(e)), message(std::move(msg)) {}

  /// Returns "category:code-name: message"; the category of every cafes layer shows as "cafes".
  std::string to_string() const;
  /// Compares the code with `c`; the message is ignored.
  friend bool operator==(const error& x, std::error_code c) { return x.code == c; }
  /// Compares the code with code `e` of an error enum (`r.error() == cafes::errc::timeout`).
  template <error_enum E>
  friend bool operator==(const error& x, E e) { return x.code == make_error_code(e); }
  /// Compares with an error condition (cafes::condition, std::errc).
  template <class E, std::enable_if_t<std::is_error_condition_enum_v<E>, int> = 0>
  friend bool operator==(const error& x, E e) { return x.code == make_error_condition(e); }
};

/// Either a value or an error (C++20 has no std::expected).
template <class T>
class [[nodiscard]] expected {
 public:
  /// The type of the value.
  using value_type = T;
  /// Holds value `v`.
  template <class U = T, class = std::enable_if_t<std::is_constructible_v<T, U&&> &&
                                                  !std::is_same_v<std::decay_t<U>, error>>>
  expected(U&& v) : v_(std::in_place_index<0>, std::forward<U>(v)) {}
  /// Holds error `e`.
  expected(cafes::error e) : v_(std::in_place_index<1>, std::move(e)) {}
  /// Holds an error of code `e`, with no message.
  template <error_enum E>
  expected(E e) : v_(std::in_place_index<1>, cafes::error{e}) {}

  /// Returns true if it holds a value.
  explicit operator bool() const noexcept { return v_.index() == 0; }
  /// Returns true if it holds a value.
  bool has_value() const noexcept { return v_.index() == 0; }
  /// Returns the value; throws bad_expected_access on an error.
  T& value() & { check(); return std::get<0>(v_); }
  /// Returns the value; throws bad_expected_access on an error.
  const T& value() const& { check(); return std::get<0>(v_); }
  /// Moves the value out; throws bad_expected_access on an error.
  T&& value() && { check(); return std::get<0>(std::move(v_)); }
  /// The value, or `fallback` on an error.
  template <class U>
  T value_or(U&& fallback) const& { return has_value() ? std::get<0>(v_) : static_cast<T>(std::forward<U>(fallback)); }
  /// Returns the value, as value() does.
  T& operator*() & { return value(); }
  /// Returns the value, as value() does.
  const T& operator*() const& { return value(); }
  /// Moves the value out, as value() does.
  T&& operator*() && { return std::move(*this).value(); }
  /// Points to the value; throws bad_expected_access on an error.
  T* operator->() { return &value(); }
  /// Points to the value; throws bad_expected_access on an error.
  const T* operator->() const { return &value(); }
  /// Returns the error; only on an error (has_value() is false).
  const cafes::error& error() const& { return std::get<1>(v_); }
  /// Moves the error out; only on an error (has_value() is false).
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
  /// Holds error `e`.
  expected(cafes::error e) : err_(std::move(e)), ok_(false) {}
  /// Holds an error of code `e`, with no message.
  template <error_enum E>
  expected(E e) : err_(cafes::error{e}), ok_(false) {}
  /// Returns true on success.
  explicit operator bool() const noexcept { return ok_; }
  /// Returns true on success.
  bool has_value() const noexcept { return ok_; }
  /// Does nothing on success; throws bad_expected_access on an error.
  void value() const;
  /// Returns the error; only on an error (has_value() is false).
  const cafes::error& error() const& { return err_; }
  /// Moves the error out; only on an error (has_value() is false).
  cafes::error&& error() && { return std::move(err_); }

 private:
  cafes::error err_;
  bool ok_ = true;
};

/// Thrown only by expected<T>::value() on an error: a programming error at the call site.
class bad_expected_access : public std::runtime_error {
 public:
  /// Carries error `e`; what() is its to_string().
  explicit bad_expected_access(const cafes::error& e) : std::runtime_error(e.to_string()), err_(e) {}
  /// Returns the error.
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

namespace detail {

/// The category of an enum declared with CAFES_ERROR_ENUM: `name`, and the code names listed
/// as the macro's text ("a, b, c"; code 1 is the first).
class named_category final : public std::error_category {
 public:
  named_category(const char* name, const char* codes);
  const char* name() const noexcept override { return name_; }
  std::string message(int v) const override;

 private:
  const char* name_;
  std::vector<std::string> codes_;
};

} // namespace detail

} // namespace cafes

/// Declares an error enum and its category in one line, at namespace scope:
///
///     CAFES_ERROR_ENUM(cart_error, "cart", empty_cart, unknown_item);
///
/// declares `enum class cart_error { ok = 0, empty_cart, unknown_item }` (codes count from 1;
/// `ok` is no error) and its make_error_code, under the category name "cart". Its errors read
/// "cart:empty_cart: message". Append new codes at the end: a code's value is its position.
#define CAFES_ERROR_ENUM(Enum, category_name, ...)                                                             \
  enum class Enum : int { ok = 0, __VA_ARGS__ };                                                               \
  [[maybe_unused]] inline std::error_code make_error_code(Enum e) noexcept {                                  \
    static const ::cafes::detail::named_category category{category_name, #__VA_ARGS__};                        \
    return {static_cast<int>(e), category};                                                                    \
  }                                                                                                            \
  static_assert(true, "")
