// Helpers for the config tests: documents built line by line (so a test
// can say which line an error is on), error lists as text, and a scratch
// directory for key files.
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "config/config.h"

namespace moongate::config::test {

// Published example keys (wg genkey / wg pubkey / wg genpsk), never real.
inline constexpr const char* kHubPrivate = "8PLMO/7AEPO5uW4pXd2SV35SRUtw370ndv54GSPqnFc=";
inline constexpr const char* kHubPublic = "ARKLV240Z7wPLm07UPxQOSxl2KvRsxOl8siDiUqcfXY=";
inline constexpr const char* kBerlinPrivate = "oOwgbi6NTmfBO4dGf6/JZs5CozmkOlLGO7SHNMkzf0w=";
inline constexpr const char* kBerlinPublic = "Mopjys/HkKInzcxNBSj4R0cOg1d6svZElRH2sxFDcGA=";
inline constexpr const char* kParisPublic = "vNFK1rMf0s8GTeRD8NAOhuRqofn0D46k4+MLkbPpnW4=";
inline constexpr const char* kMadridPublic = "90hE8Bf3x9b1FtiLhP65AUGmLer6dUpsth4NuDhX6HQ=";
inline constexpr const char* kPsk = "0Mv1gScJyGxVtjDTOiCAhEQ0OyeCEzYYkq8C2Gruf98=";

// Joins lines with '\n': line i of the vector is line i+1 of the document.
inline std::string lines(const std::vector<std::string>& ls) {
  std::string out;
  for (const std::string& l : ls) out += l + "\n";
  return out;
}

// A valid document of 11 lines that tests extend or edit.
inline std::vector<std::string> base_lines() {
  return {
      "interface:",                                     // 1
      "  name: mg0",                                    // 2
      std::string("  private_key: ") + kHubPrivate,     // 3
      "ports:",                                         // 4
      "  - name: wan0",                                 // 5
      "    role: wan",                                  // 6
      "    device: net_af_packet0,iface=veth0",         // 7
      "    address: 192.0.2.2/24",                      // 8
      "peers:",                                         // 9
      std::string("  - public_key: ") + kBerlinPublic,  // 10
      "    allowed_ips: [10.20.0.0/16]",                // 11
  };
}

// Every error of a document named t.yaml, as text.
inline std::vector<std::string> errors_of(const std::string& yaml) {
  const Result r = load_string(yaml, "t.yaml");
  std::vector<std::string> out;
  for (const Error& e : r.errors()) out.push_back(e.to_string());
  EXPECT_EQ(r.ok(), out.empty());
  return out;
}

inline std::vector<std::string> errors_of(const std::vector<std::string>& ls) {
  return errors_of(lines(ls));
}

// A private directory under $TMPDIR (or /tmp), removed with what the test
// wrote into it.
class TempDir {
 public:
  TempDir() {
    const char* tmp = getenv("TMPDIR");
    std::string tmpl =
        std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") + "/moongate-config-XXXXXX";
    if (mkdtemp(tmpl.data()) == nullptr) ADD_FAILURE() << "mkdtemp failed";
    path_ = tmpl;
  }
  ~TempDir() {
    for (const std::string& f : files_) std::remove(f.c_str());
    for (auto it = dirs_.rbegin(); it != dirs_.rend(); ++it) rmdir(it->c_str());
    rmdir(path_.c_str());
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }

  // Writes dir/name and returns its full path.
  std::string write(const std::string& name, const std::string& content) {
    const std::string p = path_ + "/" + name;
    std::ofstream(p, std::ios::binary) << content;
    files_.push_back(p);
    return p;
  }
  std::string mkdir(const std::string& name) {
    const std::string p = path_ + "/" + name;
    if (::mkdir(p.c_str(), 0700) != 0) ADD_FAILURE() << "mkdir " << p;
    dirs_.push_back(p);
    return p;
  }

 private:
  std::string path_;
  std::vector<std::string> files_;
  std::vector<std::string> dirs_;
};

}  // namespace moongate::config::test
