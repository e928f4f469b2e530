// Identity and World files (formats in moon_files.h).
#include "zerotier/moon_files.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>
#include <sstream>
#include <vector>

namespace moongate::zerotier {

namespace {

bool write_new(const std::string& path, const void* data, std::size_t n, mode_t mode, bool replace,
               std::string& error) {
  const std::string tmp = path + ".tmp";
  const int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) {
    error = tmp + ": " + std::strerror(errno);
    return false;
  }
  const bool ok = write(fd, data, n) == static_cast<ssize_t>(n) && fsync(fd) == 0;
  close(fd);
  if (!ok) {
    error = tmp + ": write failed";
    unlink(tmp.c_str());
    return false;
  }
  // link() refuses an existing target, rename() replaces it.
  if (replace ? rename(tmp.c_str(), path.c_str()) != 0 : link(tmp.c_str(), path.c_str()) != 0) {
    error = path + ": " + std::strerror(errno);
    unlink(tmp.c_str());
    return false;
  }
  if (!replace) unlink(tmp.c_str());
  return true;
}

}  // namespace

std::optional<Identity> read_identity_file(const std::string& path, std::string& error) {
  std::ifstream f(path);
  if (!f) {
    error = path + ": cannot read";
    return std::nullopt;
  }
  std::string line;
  std::getline(f, line);
  auto id = Identity::from_string(line);
  if (!id) error = path + ": not a ZeroTier identity (address:0:public[:secret]) or its secret does not match";
  return id;
}

bool write_identity_file(const std::string& path, const Identity& id, bool include_secret, std::string& error) {
  const std::string text = id.to_string(include_secret) + "\n";
  return write_new(path, text.data(), text.size(), include_secret ? 0600 : 0644, false, error);
}

std::optional<World> read_world_file(const std::string& path, std::string& error) {
  std::ifstream f(path, std::ios::binary);
  if (!f) {
    error = path + ": cannot read";
    return std::nullopt;
  }
  std::vector<std::uint8_t> bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  std::size_t used = 0;
  auto w = World::parse(bytes, &used);
  if (!w || used != bytes.size()) {
    error = path + ": not a World (.moon) file";
    return std::nullopt;
  }
  if (!w->verify()) {
    error = path + ": the World's signature does not verify";
    return std::nullopt;
  }
  return w;
}

bool write_world_file(const std::string& path, const World& world, std::string& error) {
  const auto bytes = world.serialize();
  if (bytes.empty()) {
    error = "the World is too large (at most 4 roots of 32 endpoints)";
    return false;
  }
  return write_new(path, bytes.data(), bytes.size(), 0644, true, error);
}

}  // namespace moongate::zerotier
