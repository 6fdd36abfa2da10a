# Runs `moonwire test` on fixtures that fail on purpose and checks the exit code, the
# last line of stdout and more of the output: CTest alone cannot check both the exit
# code and the output of one command.
#   cmake -DMOONWIRE=bin -DARGS="a|b" -DEXPECT_RC=1 -DEXPECT_LAST="1 passed, 1 failed"
#         -DEXPECT="regex|regex" -P check_run.cmake
string(REPLACE "|" ";" args "${ARGS}")
string(REPLACE "|" ";" expect "${EXPECT}")
execute_process(COMMAND ${MOONWIRE} test ${args}
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
message("${out}")
if(NOT rc STREQUAL "${EXPECT_RC}")
  message(FATAL_ERROR "exit code ${rc}, expected ${EXPECT_RC}; stderr:\n${err}")
endif()
string(REGEX MATCH "[^\n]*\n$" last "${out}")
if(NOT last STREQUAL "${EXPECT_LAST}\n")
  message(FATAL_ERROR "last line '${last}', expected '${EXPECT_LAST}'")
endif()
foreach(re IN LISTS expect)
  if(NOT out MATCHES "${re}")
    message(FATAL_ERROR "output does not match '${re}'")
  endif()
endforeach()
if(err MATCHES "ERROR: (Address|Leak)Sanitizer|runtime error:")
  message(FATAL_ERROR "sanitizer report:\n${err}")
endif()
