// Logging from LibTorch translation units. LibTorch's headers bring their
// own {fmt}, which clashes with the system {fmt} that spdlog's templates
// need, so stage code passes finished strings to these functions, which
// are compiled without LibTorch.
#pragma once

#include <memory>
#include <string>

namespace spdlog {
class logger;
}

namespace qerl::actors {

void log_info(const std::shared_ptr<spdlog::logger>& logger, const std::string& line);
void log_warn(const std::shared_ptr<spdlog::logger>& logger, const std::string& line);

}  // namespace qerl::actors
