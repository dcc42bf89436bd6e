// Arms the RTC alarm 2 s ahead through /dev/rtc0 and waits for its interrupt (read() on the
// device returns when it fires). Prints "alarm fired" or "alarm timeout"; exit 0 only if fired.
#include <fcntl.h>
#include <linux/rtc.h>
#include <stdio.h>
#include <sys/ioctl.h>
#include <sys/select.h>
#include <unistd.h>

int main(void) {
  int fd = open("/dev/rtc0", O_RDONLY);
  if (fd < 0) { perror("open /dev/rtc0"); return 2; }
  struct rtc_time t;
  if (ioctl(fd, RTC_RD_TIME, &t) < 0) { perror("RTC_RD_TIME"); return 2; }
  t.tm_sec += 2;
  if (t.tm_sec >= 60) { t.tm_sec -= 60; t.tm_min++; }
  if (t.tm_min >= 60) { t.tm_min -= 60; t.tm_hour = (t.tm_hour + 1) % 24; }
  if (ioctl(fd, RTC_ALM_SET, &t) < 0) { perror("RTC_ALM_SET"); return 2; }
  if (ioctl(fd, RTC_AIE_ON, 0) < 0) { perror("RTC_AIE_ON"); return 2; }
  fd_set set;
  FD_ZERO(&set);
  FD_SET(fd, &set);
  struct timeval tv = { .tv_sec = 20, .tv_usec = 0 };
  int n = select(fd + 1, &set, NULL, NULL, &tv);
  unsigned long data = 0;
  if (n > 0 && read(fd, &data, sizeof data) == sizeof data && (data & RTC_AF)) {
    printf("alarm fired\n");
    return 0;
  }
  printf("alarm timeout\n");
  return 1;
}
