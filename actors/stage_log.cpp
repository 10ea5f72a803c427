// See stage_log.hpp: spdlog calls kept out of LibTorch translation units.
#include "actors/stage_log.hpp"

#include <spdlog/spdlog.h>

namespace qerl::actors {

void log_info(const std::shared_ptr<spdlog::logger>& logger, const std::string& line) {
  (logger ? logger : spdlog::default_logger())->info("{}", line);
}

void log_warn(const std::shared_ptr<spdlog::logger>& logger, const std::string& line) {
  (logger ? logger : spdlog::default_logger())->warn("{}", line);
}

}  // namespace qerl::actors
